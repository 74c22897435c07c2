/**
 * Governorates of Poveria. Each agency codes them its own way: the civil registry by a
 * two-digit number, the aid fund by the Arabic name; the warehouse keeps `code`.
 */
export interface Region {
  code: string;
  cspdCode: string;
  en: string;
  ar: string;
  /** Share of the population, relative to the other regions. */
  weight: number;
}

export const REGIONS: readonly Region[] = [
  { code: 'PV-LF', cspdCode: '11', en: 'Landford', ar: 'لاندفورد', weight: 40 },
  { code: 'PV-NV', cspdCode: '12', en: 'Northvale', ar: 'نورثفيل', weight: 14 },
  { code: 'PV-EM', cspdCode: '13', en: 'Eastmere', ar: 'إيستمير', weight: 10 },
  { code: 'PV-SG', cspdCode: '14', en: 'Southgate', ar: 'ساوثغيت', weight: 8 },
  { code: 'PV-WB', cspdCode: '15', en: 'Westbrook', ar: 'ويستبروك', weight: 6 },
  { code: 'PV-HM', cspdCode: '16', en: 'Highmoor', ar: 'هايمور', weight: 5 },
  { code: 'PV-RM', cspdCode: '17', en: 'Rivermouth', ar: 'ريفرماوث', weight: 4 },
  { code: 'PV-SB', cspdCode: '18', en: 'Stonebridge', ar: 'ستونبريدج', weight: 4 },
  { code: 'PV-GH', cspdCode: '19', en: 'Greenhollow', ar: 'غرينهولو', weight: 3 },
  { code: 'PV-AC', cspdCode: '20', en: 'Ashcombe', ar: 'آشكومب', weight: 2 },
  { code: 'PV-FH', cspdCode: '21', en: 'Fairhaven', ar: 'فيرهيفن', weight: 2 },
  { code: 'PV-RC', cspdCode: '22', en: 'Redcliff', ar: 'ريدكليف', weight: 2 },
];

export const REGION_WEIGHTS: readonly number[] = REGIONS.map((r) => r.weight);

export function regionAt(index: number): Region {
  const region = REGIONS[index];
  if (region === undefined) throw new RangeError(`no region ${index}`);
  return region;
}
